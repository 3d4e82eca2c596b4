"""What leaves the engine: new images assigned, exports, and two settings compared."""
