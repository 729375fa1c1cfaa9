# The data layer of hildanext (see the layer table in DESIGN.md): raw corpus readers (sources), the prepare
# filters and split, tokenize-and-pack (packing, loader), SFT chats and rows (chat, sft_data), the demo corpus
# and tokenizer, and the explicit hub downloads (fetch, hub). Its modules are imported by name.
