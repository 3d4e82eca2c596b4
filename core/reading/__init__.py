"""Reading the user's images: listing a folder, decoding files safely, packed ink masks, arrays on disk."""
