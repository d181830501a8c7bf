"""Prints the models/README.md metrics table from the cards in models/*/model.json (run after train_all.sh)."""
import glob
import json
import os

MODELS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    print("| model | family | params | ONNX bytes | train time | class acc. | FID (floor) | likelihood | sampler |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for path in sorted(glob.glob(os.path.join(MODELS, "*", "model.json"))):
        m = json.load(open(path))
        c = m["card"]
        met = c.get("metrics", {})
        minutes = c["training"].split("; ")[-1]
        acc = met.get("class_accuracy", "")
        fid = f'{met["fid"]} ({met["fid_floor"]})' if "fid" in met else ""
        lik = ""
        if "heldout_bits_per_dim" in met:
            lik = f'{met["heldout_bits_per_dim"]} bits/dim'
        if "heldout_loss_nats_per_char" in met:
            lik = f'{met["heldout_loss_nats_per_char"]} nats/char'
        print(f'| {m["name"]} | {m["family"]} | {c["params"]:,} | {c["onnx_bytes"]:,} | {minutes} | {acc} | {fid} '
              f'| {lik} | {met.get("sampler", "")} |')


if __name__ == "__main__":
    main()
