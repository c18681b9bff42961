"""SSL methods and their losses (issue 14 builds the method registry here).

For now: :class:`levyjepa.methods.vicreg_loss.VICRegLoss`, the VICReg criterion as a plain
module, ahead of the ``vicreg`` method that will use it.
"""
