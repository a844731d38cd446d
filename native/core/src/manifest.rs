//! Manifest generation (HLS, DASH). Filled in by the encoding work.
