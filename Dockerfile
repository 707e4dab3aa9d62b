# TargetGrid production image: one image for web (gunicorn API + daphne WebSockets), worker, beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TARGETGRID_DATA_DIR=/var/lib/targetgrid
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-libmysqlclient-dev pkg-config gcc \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt requirements-prod.txt ./
RUN pip install -r requirements-prod.txt
COPY . .
RUN useradd --system --home /app targetgrid && mkdir -p /var/lib/targetgrid \
 && chown targetgrid /var/lib/targetgrid
USER targetgrid
EXPOSE 8000 8001
CMD ["gunicorn", "config.wsgi", "-b", "0.0.0.0:8000", "-w", "2", "-k", "gthread", "--threads", "4", "--keep-alive", "30", "--access-logfile", "-"]
