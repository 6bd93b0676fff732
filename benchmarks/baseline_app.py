"""The baseline `bench_serve_load.py` measures `pixclass serve` against: one request, one forward pass.

The shape of fastai's deploy example (an `async` route that reads the upload, opens it with PIL,
runs the model once and answers JSON; no batching, one uvicorn worker), on plain torch: the model
is the same `.pixclass` bundle, built by `pixclass.export.bundle.load_bundle` and run in fp32
under `torch.inference_mode()`, 2 threads. `BASELINE_CHANNELS_LAST=1` also switches it to
`channels_last` (a tweak a minimal app would not make, measured as a second, stronger baseline).

    BASELINE_MODEL=model.pixclass .venv/bin/python -m uvicorn baseline_app:app --app-dir benchmarks \
        --host 127.0.0.1 --port 8001 --workers 1
"""

from __future__ import annotations

import io
import os

import torch
from fastapi import FastAPI, File, UploadFile
from PIL import Image
from torchvision import transforms

from pixclass.export.bundle import load_bundle

torch.set_num_threads(2)
model, meta = load_bundle(os.environ["BASELINE_MODEL"])
model.eval()
CHANNELS_LAST = os.environ.get("BASELINE_CHANNELS_LAST") == "1"
if CHANNELS_LAST:
    model = model.to(memory_format=torch.channels_last)
size = meta["input_size"]
transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(),
                                transforms.Normalize(meta["mean"], meta["std"])])
app = FastAPI()


@app.get("/ready")
def ready() -> dict:
    return {"ready": True, "channels_last": CHANNELS_LAST}


@app.post("/predict")
async def predict(file: UploadFile = File(...)) -> dict:
    img = Image.open(io.BytesIO(await file.read())).convert("RGB")
    x = transform(img).unsqueeze(0)
    if CHANNELS_LAST:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        probs = model(x).softmax(1)[0]
    i = int(probs.argmax())
    return {"label": meta["classes"][i], "prob": float(probs[i])}
