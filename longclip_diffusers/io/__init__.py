"""Files in and out: the one loader and the conversion cache (:mod:`.loading`), the on-disk
format (:mod:`.export`), all-or-nothing writes (:mod:`.atomic`), CLIP image preprocessing
(:mod:`.image_preprocessing`) and image sheets (:mod:`.contact_sheet`)."""
