"""Released checkpoints to transformers models, exactly: the OpenAI key map
(:mod:`.openai_keys`), safe file reading (:mod:`.read_checkpoint`), the Long-CLIP / CLIP
conversion (:mod:`.convert`) and TULIP's (:mod:`.tulip_checkpoint`)."""
