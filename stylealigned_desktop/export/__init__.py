"""Storyboard deliverables (no Qt, no torch): the storyboard PDF, the animatic, the editor's
timeline and shot list, and a Storyboarder project, made from a session or a run folder. The
window and ``stylealigned export`` both use it.

    board = load_board(path)                       # board.py: a session or a run folder
    write_pdf(board, "board.pdf", PdfOptions(layout=3, page="A4", landscape=True))
    write_animatic(board, "animatic.mp4", AnimaticOptions(size=(1280, 720), fps=24),
                   progress=fn, cancel=event)      # also animatic.srt
    write_otio(board, "cut.otio", fps=24); write_shot_list(board, "shots.csv")
    write_storyboarder(board, "folder")            # folder/<name>.storyboarder + images/
"""
