"""The encode itself (PyAV): probe, ladder, transcode, CMAF packaging, thumbnails, media description."""
