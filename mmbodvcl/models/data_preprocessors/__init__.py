from .multiview_data_preprocessor import MultiViewDataPreprocessor

__all__ = ['MultiViewDataPreprocessor']
