"""The gRPC-web gateway: browsers' gRPC-web (binary and text) in front of the platform's gRPC services, and the
built web player's static files."""
