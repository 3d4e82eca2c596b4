"""Clusterings of the images: the algorithms for one k, their scores, and agreement between labelings."""
