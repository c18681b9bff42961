"""The field's benchmarks read in their own formats and scored as their official tools score them:
DAVIS 2017, TAP-Vid, VOC 2012 / ADE20K semantic segmentation, video classification clip lists.

Each module takes a *feature function* (frames in, a field of patch tokens out), so any encoder
plugs in, and an oracle (features that encode the ground truth) tests the protocol alone.
"""
