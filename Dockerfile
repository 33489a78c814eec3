# The Sentinelle service: `sentinelle serve` on 0.0.0.0:8000, as a non-root user.
#   python3 dev.py image                     # builds it with docker, podman or buildah
#   docker build -t sentinelle .             # the model from models/ (dvc pull or dvc repro)
#   docker build --build-arg MODEL_DIR=served -t sentinelle .   # after `sentinelle fetch`
#   docker run -p 8000:8000 sentinelle       # or mount a model: -v "$PWD/served:/srv/model:ro"
# The base is a build argument: any Debian-like image with Python 3.11 and its venv module.
# The final stage holds the base, the venv (no pip, no package test suites) and the model.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
RUN python3 -m venv /opt/sentinelle
COPY requirements-serve.txt constraints.txt ./
# A pip configuration and CA bundle may come as build secrets (a private index or proxy): they
# are mounted for this step only and never stored in a layer.
RUN --mount=type=secret,id=pipconf,required=false --mount=type=secret,id=pipcert,required=false \
    PIP_CONFIG_FILE=/run/secrets/pipconf \
    /opt/sentinelle/bin/pip install -r requirements-serve.txt -c constraints.txt
COPY pyproject.toml README.md LICENSE ./
COPY src/sentinelle src/sentinelle
RUN --mount=type=secret,id=pipconf,required=false --mount=type=secret,id=pipcert,required=false \
    PIP_CONFIG_FILE=/run/secrets/pipconf \
    /opt/sentinelle/bin/pip install --no-deps . \
    && /opt/sentinelle/bin/pip uninstall -y -q pip setuptools \
    && find /opt/sentinelle/lib -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} +

FROM ${BASE_IMAGE}
ARG MODEL_DIR=models
RUN useradd --no-log-init --uid 10001 --user-group --no-create-home --home-dir /srv \
    --shell /usr/sbin/nologin sentinelle
COPY --from=build /opt/sentinelle /opt/sentinelle
COPY --chown=root:root ${MODEL_DIR}/model.skops ${MODEL_DIR}/model.json /srv/model/
ENV PATH=/opt/sentinelle/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /srv
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
ENTRYPOINT ["sentinelle", "serve", "--model", "/srv/model/model.skops", "--host", "0.0.0.0", "--port", "8000"]
