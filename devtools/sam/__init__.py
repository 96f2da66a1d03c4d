"""A local SAM emulator: template.yaml read and run without Docker (functions, the HTTP API,
schedules, a moto AWS), for `make local` and `python -m devtools.invoke`."""
