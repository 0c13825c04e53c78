# gliomics CPU image: the locked dependencies, then `make demo` (dvc repro on
# the embedded synthetic cohort). Same install path as the README: `make setup`.
#   docker build -t gliomics .
#   docker run --rm -p 5000:5000 gliomics                 # demo pipeline + summary
#   docker run --rm -it -p 5000:5000 gliomics make ui      # then: gliomics ui --host 0.0.0.0
# BASE: any Debian-based image with python3.11 (venv + pip); scripts/check-image.sh builds one with
# debootstrap when the public python image cannot be pulled, and records the build in RESULTS.md.
ARG BASE=python:3.11-slim
FROM ${BASE}

RUN apt-get update \
    && apt-get install -y --no-install-recommends make git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /gliomics
# Dependencies first, so that code changes reuse the cached layer.
COPY requirements.lock pyproject.toml Makefile README.md ./
COPY src ./src
RUN make setup PYTHON=python3.11

COPY . .
ENV PATH=/gliomics/.venv/bin:$PATH
# DVC needs a git repository; the build context may come without .git.
RUN if [ ! -d .git ]; then git init -q && git add -A && git -c user.name=gliomics -c user.email=gliomics@localhost commit -qm image; fi

CMD ["make", "demo"]
