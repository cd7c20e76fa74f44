FROM python:3.11-slim
WORKDIR /srv/authpi
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir .
# Stateless: everything lives in PostgreSQL (AUTHPI_DATABASE_URL is required in production).
ENV AUTHPI_ENV=production AUTHPI_HOST=0.0.0.0 AUTHPI_PORT=8000
EXPOSE 8000
CMD ["authpi", "serve"]
