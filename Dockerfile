# The demo bot (or yours: change the last line) as a production image:
#   docker build -t shop-bot .
#   docker run -p 8000:8000 -v shop-data:/data -e QBOT_QISCUS__APP_ID=... \
#     -e QBOT_QISCUS__SECRET_KEY=... -e QBOT_BOT__EMAIL=... shop-bot
# Settings come from QBOT_* environment variables; conversation state goes to SQLite on the
# /data volume (or to Redis: QBOT_STORAGE__URL=redis://...). See docs/deployment.md.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The dependencies in their own layer: a change to the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY README.md ./
COPY qbot ./qbot
RUN pip install --no-deps .
COPY bots ./bots
COPY templates ./templates

# Non-root; the code stays root-owned and read-only, only /data is the bot's to write.
RUN useradd --system --uid 10001 --no-create-home bot && mkdir /data && chown bot /data
VOLUME /data
USER bot
ENV QBOT_SERVER__HOST=0.0.0.0 QBOT_SERVER__PORT=8000 QBOT_STORAGE__URL=sqlite:////data/qbot.db
EXPOSE 8000
# On the port the server is configured with: -e QBOT_SERVER__PORT=9000 moves both.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['QBOT_SERVER__PORT'], timeout=2)"
CMD ["qbot", "run", "bots.demo:bot"]
