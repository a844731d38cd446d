"""Generated from proto/marquee/v1 by scripts/gen_protos.py. Do not edit."""
