# The ScaiGrid emulator as a container.
#
#   docker build -t scaigrid-emulator .
#   docker run --rm -p 8080:8080 -v scaigrid-emulator-data:/data scaigrid-emulator
#
# Settings come from SCAIGRID_EMULATOR_* environment variables (`scaigrid-emulator serve --help`
# lists them all). The container listens on 0.0.0.0, so the emulator logs a warning that the
# control plane (/_emulator/...) is open to anyone who can reach the port. To require a token:
#
#   docker run -p 8080:8080 -e SCAIGRID_EMULATOR_ADMIN_TOKEN=some-secret scaigrid-emulator
#
# and send `X-Emulator-Admin-Token: some-secret` with control-plane calls (health stays open).
#
# The steps only assume `python3` with the venv module on PATH, so the same file builds on the
# official python:3.11-slim image and on a Debian-built stand-in tagged with that name.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python3 -m venv /opt/venv

# Dependencies first, read from pyproject.toml alone: editing the code does not reinstall them.
# `--build-arg EXTRAS=s3` adds boto3 for s3:// input files.
ARG EXTRAS=""
COPY pyproject.toml /src/pyproject.toml
RUN python3 -c 'import os, tomllib; \
project = tomllib.load(open("/src/pyproject.toml", "rb"))["project"]; \
extras = [e for e in os.environ["EXTRAS"].split(",") if e]; \
print("\n".join(project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]))' \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt

# Then the package itself (a wheel install; the bundled scenarios go in as emulator/_scenarios).
# pip and setuptools are not needed to run it and leave with the build stage.
COPY README.md /src/README.md
COPY scenarios /src/scenarios
COPY emulator /src/emulator
RUN /opt/venv/bin/pip install --no-deps /src \
    && /opt/venv/bin/pip uninstall -q -y pip setuptools


FROM python:3.11-slim

LABEL org.opencontainers.image.title="scaigrid-emulator" \
      org.opencontainers.image.description="A local emulator of ScaiGrid's Batch Inference API" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --gid 10001 emulator \
    && useradd --uid 10001 --gid emulator --no-create-home --home-dir /data --shell /usr/sbin/nologin emulator \
    && mkdir /data \
    && chown emulator:emulator /data

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SCAIGRID_EMULATOR_HOST=0.0.0.0 \
    SCAIGRID_EMULATOR_DB=/data/scaigrid-emulator.db

# numeric, so orchestrators can verify runAsNonRoot without reading /etc/passwd
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_emulator/health' % os.environ.get('SCAIGRID_EMULATOR_PORT', '8080'), timeout=2)"]

CMD ["scaigrid-emulator", "serve"]
