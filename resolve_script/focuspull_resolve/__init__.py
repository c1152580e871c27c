"""focuspull for DaVinci Resolve and Fusion: the Comp (Fusion page) and Edit page scripts.

``host`` is the only module that calls Resolve / Fusion; ``fusion_page`` and ``edit_page``
are the scripts; ``settings`` generates the settings window from the job's field registry;
``jobs`` runs a job on a worker thread; ``exr`` and ``sequences`` are pure Python helpers.
Imports only ``focuspull.client``, ``focuspull.spec`` (and ``focuspull.errors``), numpy,
pyzmq and msgpack: never torch or OpenImageIO, which Resolve's Python does not have.
"""
