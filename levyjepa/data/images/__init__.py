"""Natural images: the registered image sources and how they read files.

- :mod:`~levyjepa.data.images.image_folder`, :mod:`~levyjepa.data.images.imagenette`,
  :mod:`~levyjepa.data.images.cifar`: folders, the hub's Imagenette, CIFAR's pickles;
- :mod:`~levyjepa.data.images.image_shards`: tar shards (:mod:`levyjepa.data.shards`);
- :mod:`~levyjepa.data.images.hf_dataset`: a Hugging Face dataset on local disk;
- :mod:`~levyjepa.data.images.lazy_images`, :mod:`~levyjepa.data.images.encoded_images`: images
  decoded one at a time when read (from files, from the hub, from bytes held in memory);
- :mod:`~levyjepa.data.images.fixed_size_images`: decoded 8-bit images of one size (the loader's
  items when views are made on the device).

The sources return plain labelled images
(:class:`~levyjepa.data.loading.image_source.ImageSource`); the recipe's ``views`` section
makes their views (:mod:`levyjepa.data.views`).
"""

from levyjepa.data.images import hf_dataset, image_shards  # noqa: F401  (register the sources)
