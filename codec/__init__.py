"""Package data: the codec build script, FFmpeg source fetcher and prior_dump.c (installed as cpgd_bench.codec_src;
run by `cpgd-bench codec build`)."""
