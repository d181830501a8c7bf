"""Checks that train_ddpm.py's stage 3 draws the same batches in a full run as in the stage-3-only run that made the
shipped v3: with the evaluation classifier already loaded (as stage 2 leaves it in a full run), seed 444 and stage 3
from the v2 export must print, at step 2000, loss 0.0700 and DDIM-50 FID 10.373 (logs/ddpm-stage3.log). Stops
after that first checkpoint (about 10 minutes on a core).

    git show c146341:models/digits-ddpm/denoiser.onnx > /tmp/ddpm-v2.onnx   # the v2 export
    cd models/training && GS_THREADS=1 /usr/bin/python3 check_stage3_rng.py /tmp/ddpm-v2.onnx loaded
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ["GS_DEADLINE_MIN"] = "0.001"  # stop at the first checkpoint (step 2000)
import torch, common, evaluate, train_ddpm as D
common.setup(4)
timer = common.Timer()
x, _, y, tr, _ = common.digits()
xt, yt = torch.tensor(x[tr]).reshape(-1, 1, 8, 8), torch.tensor(y[tr])
ema = D.Denoiser()
D.load_from_onnx(ema, sys.argv[1])
ema.eval()
if sys.argv[2] == "loaded":
    evaluate.load_classifier()  # what stage 2 did in the same process
torch.manual_seed(444)
D.stage2(ema, xt, yt, timer, stage=3, steps=D.STEPS3, cosine=True)
