# One image for the API and the GPU workers (torch wheels carry their CUDA runtime).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY workers workers
COPY verifiers verifiers
COPY migrations migrations
COPY standards standards
COPY examples examples
RUN pip install --no-cache-dir ".[gpu]" && pip uninstall -y onnxruntime \
    && pip install --no-cache-dir --force-reinstall --no-deps "onnxruntime-gpu>=1.20"
# The commit the image was built from, recorded in every scorecard (docker build --build-arg).
ARG ROBUSTGATE_GIT_REVISION=""
ENV ROBUSTGATE_GIT_REVISION=${ROBUSTGATE_GIT_REVISION}
# Not root: a dedicated user owns the data folder (named volumes inherit its ownership).
RUN useradd --create-home --uid 10001 robustgate && mkdir -p /data \
    && chown robustgate:robustgate /data
USER robustgate
EXPOSE 8000
CMD ["robustgate", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]
