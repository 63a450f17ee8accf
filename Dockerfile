# syntax=docker/dockerfile:1
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin tierwise

WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY api/ api/
COPY domain/ domain/
COPY authz/ authz/
COPY infra/ infra/
# The runtime only: no demo/ (the dev-only demo data set) and no extras (Faker comes with tierwise[demo]).
RUN pip install --no-cache-dir . && rm -rf /src

USER tierwise
WORKDIR /home/tierwise

ENV TIERWISE_ENVIRONMENT=production \
    TIERWISE_HOST=0.0.0.0

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

CMD ["tierwise", "serve"]
