# The tradeguard image: one image for every tradeguard service (engine replicas under the HA
# coordinator, the responder). deploy/docker-compose.yml builds and runs it.
FROM python:3.11-slim

# Install the package, then drop the sources: only the installed package stays.
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN pip install --no-cache-dir /src && rm -rf /src

# Run as an unprivileged user; every service writes under /var/lib/tradeguard. The directories
# exist in the image so that Docker gives a named volume mounted there the same owner (book/ is
# where the compose layout mounts the order book the replicas share).
RUN useradd --system --uid 10001 --home-dir /var/lib/tradeguard tradeguard \
    && mkdir -p /var/lib/tradeguard/book \
    && chown -R tradeguard /var/lib/tradeguard
USER tradeguard
WORKDIR /var/lib/tradeguard
ENTRYPOINT ["tradeguard"]
CMD ["--help"]
