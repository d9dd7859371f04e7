# One image for every Tandem process (server, bridge, learner, arm-server).
# torch from PyPI here is the CUDA build, which the learner uses on a GPU host.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 nodejs npm curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tandem tandem
COPY robot_bridge robot_bridge
COPY sim sim
COPY learner learner
COPY server server
COPY teleop teleop
RUN pip install --no-cache-dir torch==2.13.0 && pip install --no-cache-dir ".[all]"

COPY web web
RUN npm ci --prefix web --no-audit --no-fund

ENV MUJOCO_GL=egl \
    TANDEM_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
VOLUME /data
ENTRYPOINT ["tandem"]
CMD ["--help"]
