# syntax=docker/dockerfile:1
# Two stages: `build` installs the locked dependencies (requirements.lock, hashes checked) and the
# app into a virtualenv; the final image copies only that virtualenv, the migrations and
# alembic.ini onto a clean slim base: no compiler, no pip, no embedded PostgreSQL, a non-root user.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/authpi
COPY requirements.lock ./
RUN /opt/authpi/bin/pip install --require-hashes --no-deps --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/authpi/bin/pip install --no-deps . \
    && /opt/authpi/bin/pip uninstall -y pip \
    && find /opt/authpi -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/authpi/bin:$PATH \
    AUTHPI_ENV=production AUTHPI_HOST=0.0.0.0 AUTHPI_PORT=8000 AUTHPI_DATA_DIR=/tmp/authpi
RUN groupadd --system --gid 10001 authpi \
    && useradd --system --uid 10001 --gid authpi --home-dir /srv/authpi --shell /usr/sbin/nologin authpi
WORKDIR /srv/authpi
COPY --from=build /opt/authpi /opt/authpi
COPY alembic.ini ./
COPY migrations ./migrations
USER 10001:10001
EXPOSE 8000
# Ready = the database answers and the schema is at head (GET /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('AUTHPI_PORT', '8000') + '/readyz', timeout=2)"]
# SIGTERM (docker stop) drains requests in flight and flushes batched events; give it the time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["authpi"]
CMD ["serve"]
