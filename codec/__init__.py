"""Package data: the codec build script, FFmpeg source fetcher and vvc_dump.c (installed as cpgd_bench.codec_src;
run by `cpgd-bench codec build`)."""
