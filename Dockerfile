# The serving image: service/ and models/ on the packages in requirements/service.txt, in a venv.
# No torch, no training code, no tests. docs/docker.md has the commands and the numbers.
#
#   docker build -t vae-service .                        CPU (onnxruntime)
#   docker build -t vae-service:gpu --build-arg VARIANT=gpu .   CUDA (onnxruntime-gpu)
#
# The base image is a build argument so that machines without Docker Hub can pass a local
# Debian + python3 image instead (see docs/docker.md).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# cpu: requirements/service.txt; gpu: the same with onnxruntime swapped for requirements/service-gpu.txt
ARG VARIANT=cpu

# ORT_DISABLE_TELEMETRY: onnxruntime's POSIX telemetry otherwise tries to upload usage events and,
# on the read-only filesystem, warns at start-up that it cannot store a device id.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ORT_DISABLE_TELEMETRY=1 \
    PATH=/opt/venv/bin:$PATH

RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin vae

# Dependencies before code, so that editing service/ or models/ reuses this layer.
# gpu: onnxruntime and onnxruntime-gpu install the same module, so never both at once; CUDA and
# cuDNN come as pip wheels (site-packages/nvidia/*/lib), which ldconfig puts on the loader's path.
# pip and setuptools leave the venv at the end: serving needs neither (about 25 MB).
COPY requirements/service.txt requirements/service-gpu.txt /tmp/requirements/
RUN set -eu; \
    python3 -m venv /opt/venv; \
    pip install --no-cache-dir -q -r /tmp/requirements/service.txt; \
    if [ "$VARIANT" = gpu ]; then \
      pip uninstall -y -q onnxruntime; \
      pip install --no-cache-dir -q -r /tmp/requirements/service-gpu.txt; \
      site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
      ls -d "$site"/nvidia/*/lib > /etc/ld.so.conf.d/vae-nvidia-wheels.conf; \
      ldconfig; \
    elif [ "$VARIANT" != cpu ]; then \
      echo "VARIANT must be cpu or gpu, not '$VARIANT'" >&2; exit 1; \
    fi; \
    pip uninstall -y -q pip setuptools; \
    rm -rf /tmp/requirements

WORKDIR /app
COPY service/ /app/service/
COPY models/ /app/models/
# Compile once here: the code is read-only to the service user, so it could not cache bytecode.
RUN python -m compileall -q /app/service

# VAE_MODEL_DIR is where a volume may replace the baked-in models (compose mounts ./models).
ENV VAE_HOST=0.0.0.0 \
    VAE_PORT=8000 \
    VAE_MODEL_DIR=/app/models
EXPOSE 8000
USER vae

# Liveness: the process answers HTTP. (GET /ready, used by compose, also waits for model warm-up.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('VAE_PORT', '8000'), timeout=2)"]

# exec form: python is PID 1 and gets SIGTERM directly, so it drains in-flight requests.
CMD ["python", "-m", "service", "serve"]
