"""The application: composition root (server), command line, status socket, demo data.

It wires infrastructure and domains together and holds no call policy of its own."""
