"""How many tokens an encoder reads: the knowledge-preserved stretching rule
(:mod:`.stretching`), fitting any encoder to N positions (:mod:`.fit_length`), weight-sharing
twins (:mod:`.weight_sharing`) and the per-prompt token report (:mod:`.tokens`)."""
