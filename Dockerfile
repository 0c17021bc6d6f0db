# One image for web, worker, beat and migrate (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings to load; these throwaway values never reach a running container.
RUN SECRET_KEY=build-only-not-secret-build-only-not-secret-build-only \
    FIELD_ENCRYPTION_KEYS=YnVpbGQtb25seS1ub3QtYS1yZWFsLWtleS0wMDAwMDA= \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput \
 && useradd --system --uid 10001 --home /app portal \
 && mkdir -p /app/var && chown portal /app/var

USER portal
EXPOSE 8000
# Threads, not sync workers: a long-poll of the events feed waits on a thread, and at most
# EVENTS_LONG_POLLS_PER_PROCESS of each process's 8 wait at once, so the others serve everyone else.
CMD ["gunicorn", "integration_tools.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", "--threads", "8", "--access-logfile", "-"]
