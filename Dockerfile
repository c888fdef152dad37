# A production image for a qbot bot: `docker build -t shop-bot .` then
# `docker run -p 8000:8000 -e QBOT_QISCUS__APP_ID=... -e QBOT_QISCUS__SECRET_KEY=... -e QBOT_BOT__EMAIL=... shop-bot`
# (settings come from the environment; mount a config.yaml and add --config to use a file).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY qbot ./qbot
RUN pip install --no-cache-dir .
COPY bots ./bots
COPY templates ./templates
RUN useradd --create-home --uid 10001 bot
USER bot
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["qbot", "run", "bots.demo:bot"]
