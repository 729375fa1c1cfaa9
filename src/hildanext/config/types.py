# The constrained scalar types and the error every params class shares (config/__init__.py, config/decode.py).
# Entry points: STRICT (the pydantic config: unknown keys refused, frozen), Pos, NonNeg, PosFloat, Rate,
# ParamsError (a bad params value, naming its key and file).
from typing import Annotated
from pydantic import ConfigDict, Field
STRICT = ConfigDict(extra="forbid", frozen=True)
Pos = Annotated[int, Field(ge=1)]
NonNeg = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
Rate = Annotated[float, Field(ge=0, le=1)]
class ParamsError(ValueError):
    pass
