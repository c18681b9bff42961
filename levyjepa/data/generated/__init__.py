"""Generated data, no files needed, with exact ground truth.

- :mod:`~levyjepa.data.generated.dead_leaves`, :mod:`~levyjepa.data.generated.scenes`: image
  generators (shapes over dead-leaves backgrounds; scenes with semantic and instance maps),
  built on :mod:`~levyjepa.data.generated.random_streams` (counter-based random streams) and
  :mod:`~levyjepa.data.generated.shape_masks` (the shape masks and their painting);
- :mod:`~levyjepa.data.generated.moving_shapes`, :mod:`~levyjepa.data.generated.scene_clips`:
  clip generators (moving shapes; scenes of moving, occluding shapes with per-frame maps);
- :mod:`~levyjepa.data.generated.synthetic_shapes`,
  :mod:`~levyjepa.data.generated.scene_images`, :mod:`~levyjepa.data.generated.synthetic_video`,
  :mod:`~levyjepa.data.generated.scene_video`: the registered sources built on them.
"""
