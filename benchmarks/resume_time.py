"""Time to the first training batch of a resumed run: skipping the batches already trained
on after decoding and augmenting them (`Dataset.skip` on the finished stream, the package's
way before this version) against before it (`make_dataset(skip_batches=...)`, now used by
`spgnet train`). Both streams are checked to yield the same batch.

The CamVid recipe's pipeline (crop 160x224, batch 8, scales 0.5-2.0, flip) on the shared
CamVid copy, resumed at steps 0, 46 (epoch 1), 460 (epoch 10) and 920 (epoch 20). The
Cityscapes recipe (80 x 1000 steps) would skip up to 80k batches: the decode-first cost
grows linearly with the step, the skip-first cost with the number of file names shuffled.

    python benchmarks/resume_time.py            # writes section resume-time
    python benchmarks/resume_time.py --quick    # steps 0 and 46 only, no doc section
"""

import argparse
import time

import _common
import numpy as np

_common.setup_tensorflow_logging()

from spgnet_keras.data import make_dataset  # noqa: E402


def stream(root, **kwargs):
    return make_dataset("camvid", "train", root=root, batch_size=8, crop_size=(160, 224), training=True,
                        seed=0, repeat=True, **kwargs)


def first_batch_seconds(dataset):
    start = time.perf_counter()
    images, masks = next(iter(dataset))
    return time.perf_counter() - start, images.numpy(), masks.numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--steps", default="0,46,460,920")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    steps = [0, 46] if args.quick else [int(s) for s in args.steps.split(",")]
    root = _common.camvid_root(args.data_root)
    machine = _common.Machine()
    rows = []
    for step in steps:
        replay, replay_images, replay_masks = first_batch_seconds(stream(root).skip(step))
        machine.sample_load()
        skip, skip_images, skip_masks = first_batch_seconds(stream(root, skip_batches=step))
        machine.sample_load()
        same = np.array_equal(replay_images, skip_images) and np.array_equal(replay_masks, skip_masks)
        rows.append(dict(step=step, replay_seconds=replay, skip_seconds=skip, same_batch=bool(same)))
        print(f"step {step}: decode-then-skip {replay:.2f} s, skip-before-decode {skip:.2f} s, same batch: {same}")
    machine.finish()
    _common.write_json(_common.RESULTS / "resume_time.json", dict(rows=rows, machine=machine.to_dict()))
    if args.quick:
        return
    table = ["| resumed at step | decode, augment, then skip (before) | skip before decoding (now) | same first batch |",
             "|---:|---:|---:|---|"]
    for row in rows:
        table.append(f"| {row['step']} | {row['replay_seconds']:.2f} s | {row['skip_seconds']:.2f} s | "
                     f"{'yes' if row['same_batch'] else 'NO'} |")
    per_batch = (rows[-1]["replay_seconds"] - rows[0]["replay_seconds"]) / max(rows[-1]["step"], 1)
    text = "\n".join([
        "## Resume time: time to the first batch of a resumed training stream",
        "",
        machine.markdown(),
        "- Pipeline: CamVid train, crop 160x224, batch 8, random scale 0.5-2.0 and flip (the camvid_cpu recipe).",
        "",
        *table,
        "",
        f"Replaying costs about {1000 * per_batch:.0f} ms per skipped batch here: at that rate a resume at step "
        f"80 000 (the Cityscapes recipe's last epoch) would replay for {80000 * per_batch / 60:.0f} min with "
        "CamVid-size images (Cityscapes frames are 1024x2048, about 18 times the pixels of this CamVid copy, so "
        "longer); skipping the shuffled file names and seeds first does not grow measurably with the step here.",
    ])
    _common.write_section("resume-time", text)


if __name__ == "__main__":
    main()
