import numpy as np, time, sys
from dynamics import Langevin
from plasticity.memory import *
from plasticity import EqProp
from tissue import Tissue
shape=tuple(int(a) for a in sys.argv[1:4]); P=int(sys.argv[4]); ep=int(sys.argv[5]); lr=float(sys.argv[6])
rng=np.random.default_rng(0)
t=Tissue.cube(shape,stencil=26,init="zero",seed=0)
xi=random_patterns(P,t.n,rng)
cues=corrupt(np.repeat(xi,4,axis=0),0.2,"flip",np.random.default_rng(9)); tg=np.repeat(np.arange(P),4)
def score():
    r=recall(t,cues,Langevin(dt=0.2,tol=1e-4,max_steps=2000)).rates
    return overlaps(r,xi)[np.arange(len(tg)),tg].mean()
store_patterns(t,xi,gain=float(sys.argv[7])); print('hebb',score())
t0=time.time()
h=learn_patterns(t,xi,epochs=ep,init="keep",trainer=EqProp(beta=float(sys.argv[8]),lr=lr,optimizer="adam",batch_size=16),seed=1)
print('eqprop',score(), h['loss'][0], h['loss'][-1], h['overlap'][-1], time.time()-t0)
