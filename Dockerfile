# Marquee's container image: one image runs any component (docs/kubernetes.md).
#
#   docker build -t marquee .                      (or: buildah bud -t marquee .)
#   docker run --rm --read-only --tmpfs /tmp marquee --help
#   docker run --rm --read-only --tmpfs /tmp --entrypoint /usr/bin/tini marquee -- python -m edge --help
#
# Stages: `player` builds the web player (web/dist, which the gateway serves); `builder` builds the wheels
# (Marquee's with maturin --locked from Cargo.lock and the lock's maturin, with the player inside; LightFM's from
# its sdist, as ./dev does) and installs them with the locked runtime dependencies, by hash, into a virtual
# environment without pip; `runtime` is Debian bookworm slim with Debian's Python 3.11 and tini as PID 1
# (scripts/image-runtime.sh, which the tests also run in a debootstrap root filesystem), a non-root user, no
# compiler, and nothing written outside its volumes (data, cache, /tmp): it runs with a read-only root.
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG NODE_IMAGE=docker.io/library/node:22-bookworm-slim

FROM ${NODE_IMAGE} AS player
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM ${RUST_IMAGE} AS rust

FROM ${DEBIAN_IMAGE} AS builder
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml requirements.lock ./
COPY scripts/lock.py scripts/
# The build tools from the lock (pip before 25.3 and setuptools before 80 build LightFM: see pyproject.toml)
RUN python3.11 -m venv /opt/build \
    && python3.11 scripts/lock.py only pip setuptools wheel cython numpy scipy maturin >/tmp/build.txt \
    && /opt/build/bin/pip install -q --no-deps --require-hashes -r /tmp/build.txt \
    && python3.11 scripts/lock.py only lightfm >/tmp/lightfm.txt \
    && /opt/build/bin/pip wheel -q --no-deps --require-hashes --no-build-isolation -r /tmp/lightfm.txt -w /wheels
COPY Cargo.toml Cargo.lock ./
COPY native/ native/
COPY marquee/ marquee/
COPY services/ services/
COPY edge/ edge/
COPY ml/ ml/
COPY --from=player /src/web/dist web/dist
RUN /opt/build/bin/maturin build --release --locked --out /wheels
# The runtime environment: the lock's runtime entries by hash, then the two wheels built above; no pip in it.
RUN python3.11 -m venv --without-pip /opt/marquee \
    && python3.11 scripts/lock.py runtime --except lightfm >/tmp/runtime.txt \
    && /opt/build/bin/pip --python /opt/marquee/bin/python install -q --no-deps --require-hashes -r /tmp/runtime.txt \
    && /opt/build/bin/pip --python /opt/marquee/bin/python install -q --no-deps --no-index /wheels/*.whl

FROM ${DEBIAN_IMAGE} AS runtime
COPY scripts/image-runtime.sh /tmp/image-runtime.sh
RUN sh /tmp/image-runtime.sh && rm /tmp/image-runtime.sh
COPY --from=builder /opt/marquee /opt/marquee
ENV PATH=/opt/marquee/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8 \
    HOME=/var/lib/marquee XDG_CACHE_HOME=/var/cache/marquee \
    MARQUEE_DATA_DIR=/var/lib/marquee
USER 10001:10001
WORKDIR /var/lib/marquee
VOLUME ["/var/lib/marquee", "/var/cache/marquee", "/tmp"]
ENTRYPOINT ["/usr/bin/tini", "--", "marquee"]
CMD ["--help"]
