"""Pictures of coding priors: the optical-flow colour wheel and `cpgd-bench dataset show` panels and viewer."""

from cpgd_bench.viz.flowviz import flow_to_rgb, wheel_image
from cpgd_bench.viz.show import ShowResult, parse_frames, show_sequence

__all__ = ["ShowResult", "flow_to_rgb", "parse_frames", "show_sequence", "wheel_image"]
