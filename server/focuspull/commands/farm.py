"""``focuspull farm template``: render a shot on the farm the studio already has.

Takes the options of ``focuspull render`` (or ``--job FILE`` from ``--print-job``, the Nuke
node, the Resolve script) and writes an Open Job Description job template with its
parameter values and the job file (see :mod:`focuspull.farm.openjd`), or with ``--bundle`` a
Deadline Cloud job bundle.  Nothing renders here; torch is never imported.
"""
from __future__ import annotations

import argparse
import json
import os

HELP = "write an Open Job Description template or a Deadline Cloud job bundle for a render"

EPILOG = """actions:
  template   the render as an OpenJD job template (focuspull farm template --help)

examples:
  focuspull farm template shot.####.exr out/shot_dof.####.exr --fstop 2 \\
      --focus-distance 1001:1.6,1048:14@smooth --frames 1001-1048 --chunk-size 8 --out-dir farm/sh010
  openjd run farm/sh010/template.yaml -p file://farm/sh010/parameters.yaml
  focuspull farm template --job sh010.json --bundle farm/sh010_bundle
  deadline bundle submit farm/sh010_bundle"""

TEMPLATE_EPILOG = """Writes, with --out-dir DIR:   template.yaml, parameters.yaml (openjd run -p file://...), job.json
            with --bundle DIR:    template.yaml, parameter_values.yaml, asset_references.yaml, job.json
                                  (a Deadline Cloud job bundle: deadline bundle submit DIR)
Each chunk of --chunk-size frames is one task running
  focuspull render IN OUT --job job.json --frames CHUNK --resume
(a rerun of a killed task redoes only its missing frames); a last step writes the preview
movie (--preview, default beside the frames) from the finished frames.  Files already in DIR
with these names are replaced; frames are never overwritten (tasks always --resume).

examples:
  focuspull farm template shot.####.exr out/shot_dof.####.exr --fstop 2 --focus-distance 3 \\
      --frames 1001-1100 --chunk-size 10 --out-dir farm/sh010
  openjd run farm/sh010/template.yaml -p file://farm/sh010/parameters.yaml
  focuspull farm template --job sh010.json --bundle farm/sh010_bundle --device cuda
  deadline bundle submit farm/sh010_bundle"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``template`` and the options of ``focuspull render`` (the one definition of them)."""
    from focuspull.commands.render import add_arguments as render_arguments
    from focuspull.farm.openjd import DEFAULT_CHUNK_SIZE

    actions = parser.add_subparsers(dest="farm_action", metavar="ACTION", required=True)
    template = actions.add_parser(
        "template", help="write an OpenJD job template (or a Deadline Cloud bundle) for a render",
        description="Write an Open Job Description template that renders IN -> OUT in chunks of frames "
                    "on a farm, with the options of focuspull render (or --job FILE).",
        epilog=TEMPLATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    render_arguments(template)
    farm = template.add_argument_group("farm")
    where = farm.add_mutually_exclusive_group(required=True)
    where.add_argument("--out-dir", metavar="DIR",
                       help="write template.yaml, parameters.yaml and job.json (openjd run, any OpenJD runtime)")
    where.add_argument("--bundle", metavar="DIR",
                       help="write a Deadline Cloud job bundle folder (deadline bundle submit DIR)")
    farm.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE, metavar="N",
                      help="frames per task (default %(default)s)")
    farm.add_argument("--name", help="the job's name on the farm (default: focuspull OUTPUT-NAME)")
    farm.add_argument("--listed-chunks", action="store_true",
                      help="list the chunks in the template instead of using the TASK_CHUNKING extension "
                           "(for OpenJD runtimes without it; frames and chunk size are then fixed here)")


def _write_text(path: str, text: str) -> None:
    from focuspull.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)


def write_farm_files(farm, directory: str, *, bundle: bool) -> list[str]:
    """Write the template, its parameter values and the job file into ``directory``; returns
    the paths written.  Every file is written atomically."""
    from focuspull.errors import InputError
    from focuspull.farm.openjd import (JOB_FILE_NAME, asset_references, bundle_parameter_values, job_template,
                                       parameter_values)
    from focuspull.farm.yaml_text import dump_yaml

    directory = os.path.abspath(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the folder {directory}: {exc.strerror}",
                         "pass a folder you can write to") from None
    job_file = os.path.join(directory, JOB_FILE_NAME)
    files = {"template.yaml": dump_yaml(job_template(farm)),
             JOB_FILE_NAME: json.dumps(farm.job, indent=2) + "\n"}
    if bundle:
        files["parameter_values.yaml"] = dump_yaml(bundle_parameter_values(farm))
        files["asset_references.yaml"] = dump_yaml(asset_references(farm))
    else:
        files["parameters.yaml"] = dump_yaml(parameter_values(farm, job_file))
    written = []
    for name, text in files.items():
        path = os.path.join(directory, name)
        try:
            _write_text(path, text)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror}", "pass a folder you can write to") from None
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    from focuspull.commands.render import job_from_args
    from focuspull.errors import InputError
    from focuspull.farm.openjd import chunks, farm_job

    if args.output__overwrite:
        raise InputError("--overwrite does not apply to a farm render: its tasks always resume",
                         "frames of this render already on disk are kept and frames of another render "
                         "(other settings) are replaced; delete output frames to redo them")
    job = job_from_args(args)
    if args.print_job:
        print(json.dumps(job.to_dict(), indent=2))
        return 0
    farm = farm_job(job, chunk_size=args.chunk_size, name=args.name, listed_chunks=args.listed_chunks)
    directory = args.bundle or args.out_dir
    written = write_farm_files(farm, directory, bundle=bool(args.bundle))
    tasks = len(chunks(farm.frames, farm.chunk_size))
    print(f"focuspull: farm job '{farm.name}': {len(farm.frames)} frames in {tasks} task"
          f"{'s' if tasks != 1 else ''} of up to {farm.chunk_size}, then the preview -> {farm.preview}")
    for path in written:
        print(f"  wrote {path}")
    here = os.path.abspath(directory)
    if args.bundle:
        print(f"submit it:        deadline bundle submit {here}")
    else:
        print(f"run it here:      openjd run {os.path.join(here, 'template.yaml')} "
              f"-p file://{os.path.join(here, 'parameters.yaml')}")
    print(f"check it:         openjd check {os.path.join(here, 'template.yaml')}")
    return 0
