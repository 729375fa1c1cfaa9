# Data sources for the pipeline. Today: the embedded demo corpus (synthetic TinyStories-like stories)
# used by the offline demo; the data issue adds Dolma, TinyStories and local files behind one loader.
# Entry point: hildanext.data.demo_corpus.demo_stories.
