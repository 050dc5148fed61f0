"""A real RTSP server (GStreamer relay) and a real publisher on 127.0.0.1, for tests of RTSP input and output."""
