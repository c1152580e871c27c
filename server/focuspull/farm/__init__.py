"""Farm front end: a render job as an Open Job Description template (``openjd run``, AWS
Deadline Cloud, any OpenJD runtime) and a Deadline Cloud job bundle.  Pure Python; no torch,
no OpenImageIO.  See docs/farm.md.
"""
