"""The all-in-one platform: service discovery by plugin and the supervisor behind `marquee up`."""
