"""Dotmap's engine: pure Python, no Streamlit. Its rooms follow the flow of the data: reading, then
representation, then clustering, run and cached by the engine's stage table; curation and outputs
work on what it prepared; cli is the command line in front of it all."""
