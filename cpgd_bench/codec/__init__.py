"""VVC codec layer: VVenC encoding, the patched-decoder dump tool, and coding priors in the store schema.

    from cpgd_bench.codec import load_profile, extract_priors
    coded = extract_priors(frames, load_profile("default"), workdir=Path("work"), name="seq")
"""

from .dump import build_dump_tool, decoder_version, dump_tool_path, frame_md5s, patch_sha256, run_dump
from .encode import StreamingEncoder, encode, encoder_version, ffmpeg_exe
from .errors import CodecError
from .priors import (
    BLOCK_ARRAYS,
    PRIOR_ARRAYS,
    CodedSequence,
    PriorStream,
    coded_stream,
    decode_priors,
    encode_sequence,
    extract_priors,
)
from .profiles import CodecProfile, load_profile, profile_names
from .records import DumpFrame

__all__ = [
    "BLOCK_ARRAYS", "PRIOR_ARRAYS", "CodecError", "CodecProfile", "CodedSequence", "DumpFrame", "PriorStream",
    "StreamingEncoder", "build_dump_tool", "coded_stream", "decode_priors", "decoder_version", "dump_tool_path",
    "encode", "encode_sequence", "encoder_version", "extract_priors", "ffmpeg_exe", "frame_md5s", "load_profile",
    "patch_sha256", "profile_names", "run_dump",
]
