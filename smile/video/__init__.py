"""Faces that move: video files and live cameras, each person tracked (:mod:`smile.video.pipeline`).

- :mod:`~smile.video.decode`: a video read as a stream of frames (PyAV), sampled; numpy frames alike.
- :mod:`~smile.video.tracking`: a stable id for each person's face (ByteTrack's association).
- :mod:`~smile.video.smoothing`: each track's probabilities smoothed over time.
- :mod:`~smile.video.pipeline`: frames -> faces -> tracks -> network (in batches) -> smoothed results.
- :mod:`~smile.video.outputs`: the per-frame CSV, per-track summary, timeline figure, annotated video.

From Python: ``smile.load().predict_video("clip.mp4")`` yields one result per frame as it comes.
"""

#: Each track's smoothing time constant, seconds (:mod:`smile.video.smoothing`; 0: off).
DEFAULT_SMOOTHING = 0.2
#: A full face detection every this many frames, the tracked faces found again in between
#: (:mod:`smile.video.pipeline`).
DEFAULT_DETECT_EVERY = 5
