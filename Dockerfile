# syntax=docker/dockerfile:1
# The appliance's GPU image: CUDA PyTorch, the C envs compiled in a build stage,
# a non-root user, `appliance` as the entrypoint, a health check on /metrics.
#
#   docker build -t appliance .
#   docker run --gpus all --shm-size=8g -p 9100:9100 appliance train --env snake
#
# --shm-size matters: the actors and the learner exchange every observation
# through a shared-memory arena in /dev/shm, and Docker gives a container only
# 64 MB there by default. `appliance doctor` (also run before `train`) checks it.
ARG PYTORCH_IMAGE=pytorch/pytorch:2.7.0-cuda12.8-cudnn9

FROM ${PYTORCH_IMAGE}-devel AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY appliance ./appliance
COPY envs ./envs
COPY actors ./actors
COPY learner ./learner
COPY monitoring ./monitoring
RUN python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTORCH_IMAGE}-runtime
COPY --from=build /wheels /wheels
# torch comes with the base image; the wheel's requirement (torch>=2.1) is already met.
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin appliance \
 && mkdir -p /runs && chown appliance:appliance /runs
USER appliance
WORKDIR /runs
ENV APPLIANCE_METRICS_ADDR=0.0.0.0 \
    APPLIANCE_RUNS_DIR=/runs \
    PYTHONUNBUFFERED=1
EXPOSE 9100
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["appliance", "health"]
ENTRYPOINT ["appliance"]
CMD ["train"]
