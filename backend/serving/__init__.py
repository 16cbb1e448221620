"""Serving: the stdio JSON-RPC backend the Blender add-on drives, and the in-process model service.

    entry.py       `python -m backend serve`: command line, start-up, the read loop, exit
    dispatcher.py  Server: requests to handlers, the model thread, replies and notifications
    methods.py     each RPC method's params and limits; which methods run on the model thread
    protocol.py    JSON-RPC 2.0 framing, error codes, mesh <-> base64, param validation (torch-free)
    service.py     ModelService: load, sample, reconstruct, interpolate, variations (CLI and server)
    jobs.py        JobTable: fine-tunes and request-time fits by id (start, progress, status, cancel)
    lines.py       LineReader: bounded request lines from a raw fd
    stdio.py       the protocol's private stdin/stdout; logs to stderr and a file
    lifetime.py    signals and the parent-process watch that stop the server
    process.py     OS facts: resident memory, whether a pid lives, out-of-memory errors

Nothing is imported here, so `import backend.serving.protocol` stays free of torch.
"""
