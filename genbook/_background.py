"""The child process of :func:`genbook.train.fit_in_background`: ``python -m genbook._background FOLDER``.

Reads ``FOLDER/job.pt``, runs :func:`genbook.fit` and writes ``FOLDER/result.pt``: the trained
``state_dict`` and the :class:`~genbook.History`, or the exception ``fit`` raised.
"""

import os
import sys

import torch

from .train import fit


def main(folder: str) -> None:
    job = torch.load(os.path.join(folder, "job.pt"), weights_only=False)
    torch.set_num_threads(job["threads"])
    torch.set_rng_state(job["rng_state"])
    model = job["model"]
    try:
        hist = fit(model, job["train"], **job["kwargs"])
        res = dict(state=model.state_dict(), history=hist)
    except Exception as e:  # handed to the parent, which raises it
        res = dict(error=e)
    torch.save(res, os.path.join(folder, "result.pt.part"))
    os.replace(os.path.join(folder, "result.pt.part"), os.path.join(folder, "result.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
