"""The playground: `persianllama serve`, a local web page (and its JSON API) to chat with the models the toolkit
built, compare them side by side, and inspect its run folders (data cards, loss curves, eval tables, fertility,
corpus rows).

- :mod:`persianllama.serve.runs`: what each folder under ``--runs`` is, and the only way files are read from
  them (no ``..``, no absolute paths, no symlinks out);
- :mod:`persianllama.serve.models`: the models it can load (``--model`` and the ones found under ``--runs``),
  one worker thread and one bounded queue per model, token streaming;
- :mod:`persianllama.serve.app`: the Starlette app (the page, ``/api/...``), security headers, SSE;
- :mod:`persianllama.serve.cli`: the command, its settings and the server.

The page and everything it loads (JS, CSS, the Vazirmatn font) ship in ``static/``: it works offline.
"""
